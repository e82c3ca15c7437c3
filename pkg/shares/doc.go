// Package shares holds the Vault unseal-key share model.
package shares
