package main

import (
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyshare/keyshare/internal/confload"
	"github.com/keyshare/keyshare/internal/pki"
)

// tlsCommand is `unsealer tls`: the deployment CA, leaf certificates and the
// CRL (internal/pki does the work).
func tlsCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "tls",
		Short: "Make the deployment CA, issue and revoke certificates",
		Long: `tls makes the certificates of a keyshare deployment, in the spirit of
'consul tls': a CA per deployment, a certificate per holder, unsealer,
operator, KMS plugin or Vault node (exactly one URI SAN,
spiffe://<trust-domain>/<role>/<name>, and the key usages of the role), and a
CRL that the daemons reload without a restart. Keys are written 0600 and
never overwritten. See README "Certificates" to use an existing CA instead.`,
	}
	ca := &cobra.Command{Use: "ca", Short: "The deployment CA"}
	ca.AddCommand(tlsCACreateCommand())
	cert := &cobra.Command{Use: "cert", Short: "Leaf certificates"}
	cert.AddCommand(tlsCertCreateCommand(), tlsCertRevokeCommand())
	crl := &cobra.Command{Use: "crl", Short: "The certificate revocation list"}
	crl.AddCommand(tlsCRLUpdateCommand())
	c.AddCommand(ca, cert, crl)
	return c
}

// tlsUsage marks the caller's bad input, so that the command exits 2.
func tlsUsage(err error) error {
	var inv *pki.InvalidError
	if errors.As(err, &inv) {
		return &confload.Error{Err: err}
	}
	return err
}

func tlsCACreateCommand() *cobra.Command {
	var dir, trustDomain, keyType string
	var days int
	var noNC bool
	c := &cobra.Command{
		Use:   "create --trust-domain TD [--dir DIR]",
		Short: "Create the deployment CA: DIR/ca.crt (0644) and DIR/ca.key (0600); never overwrites",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			kt, err := pki.ParseKeyType(keyType)
			if err != nil {
				return tlsUsage(err)
			}
			ca, err := pki.CreateCA(dir, pki.CAOptions{TrustDomain: trustDomain, KeyType: kt, Days: days, NoNameConstraint: noNC})
			if err != nil {
				return tlsUsage(err)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "created CA for trust domain %s, valid until %s\n", ca.TrustDomain.Name(), ca.Cert.NotAfter.UTC().Format(time.RFC3339))
			fmt.Fprintf(w, "  certificate %s (every daemon's tls.ca_file)\n", ca.CertPath())
			fmt.Fprintf(w, "  key         %s (0600: keep it offline, it signs every identity)\n", ca.KeyPath())
			if !noNC {
				fmt.Fprintf(w, "  name constraint: only spiffe://%s/... URIs\n", ca.TrustDomain.Name())
			}
			return nil
		},
	}
	c.Flags().StringVar(&dir, "dir", ".", "folder for ca.crt, ca.key and later crl.pem (created if missing)")
	c.Flags().StringVar(&trustDomain, "trust-domain", "", "SPIFFE trust domain, e.g. keyshare.example (required)")
	c.Flags().StringVar(&keyType, "key-type", "ecdsa", "ecdsa (P-256) or ed25519")
	c.Flags().IntVar(&days, "days", pki.DefaultCADays, "validity in days")
	c.Flags().BoolVar(&noNC, "no-name-constraint", false, "leave out the name constraint to the trust domain")
	_ = c.MarkFlagRequired("trust-domain")
	return c
}

func tlsCertCreateCommand() *cobra.Command {
	var caDir, outDir, role, name, keyType, trustDomain string
	var ips, dns []string
	var days int
	c := &cobra.Command{
		Use:   "create --role ROLE --name NAME [--ip A[,B]] [--dns H] [--days D]",
		Short: "Issue <role>-<name>.crt and .key (0600) from the CA; never overwrites",
		Long: `create issues a certificate with exactly one URI SAN,
spiffe://<trust-domain>/<role>/<name>, plus the IP and DNS SANs given.
Roles and their key usages:
  holder, unsealer  TLS server and client (they serve gossip); --ip required
  operator          TLS client only (break-glass CLI)
  kmsplugin         TLS client only (it dials Vault)
  vault             TLS server only (a Vault listener); --ip or --dns required`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := pki.ParseRole(role)
			if err != nil {
				return tlsUsage(err)
			}
			kt, err := pki.ParseKeyType(keyType)
			if err != nil {
				return tlsUsage(err)
			}
			addrs, err := pki.ParseIPs(ips)
			if err != nil {
				return tlsUsage(err)
			}
			var names []string
			for _, d := range dns {
				names = append(names, strings.Split(d, ",")...)
			}
			ca, err := pki.LoadCA(caDir, trustDomain)
			if err != nil {
				return err
			}
			l, err := ca.Issue(pki.LeafOptions{Role: r, Name: name, IPs: addrs, DNSNames: names, Days: days, KeyType: kt})
			if err != nil {
				return tlsUsage(err)
			}
			certPath, keyPath, err := pki.WriteLeaf(outDir, r, name, l)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "issued %s (serial %x), valid until %s\n", l.ID, l.Cert.SerialNumber, l.Cert.NotAfter.UTC().Format(time.RFC3339))
			fmt.Fprintf(w, "  certificate %s\n  key         %s (0600)\n", certPath, keyPath)
			return nil
		},
	}
	c.Flags().StringVar(&caDir, "ca-dir", ".", "folder of ca.crt and ca.key")
	c.Flags().StringVar(&outDir, "out-dir", ".", "folder to write <role>-<name>.crt and .key into")
	c.Flags().StringVar(&role, "role", "", "holder, unsealer, operator, kmsplugin or vault (required)")
	c.Flags().StringVar(&name, "name", "", "last segment of the SPIFFE ID: letters, digits, '.', '-', '_' (required)")
	c.Flags().StringSliceVar(&ips, "ip", nil, "IP SANs, comma-separated or repeated")
	c.Flags().StringSliceVar(&dns, "dns", nil, "DNS SANs, comma-separated or repeated")
	c.Flags().IntVar(&days, "days", pki.DefaultLeafDays, "validity in days")
	c.Flags().StringVar(&keyType, "key-type", "ecdsa", "ecdsa (P-256) or ed25519")
	c.Flags().StringVar(&trustDomain, "trust-domain", "", "override the trust domain read from the CA (for a CA made elsewhere)")
	_ = c.MarkFlagRequired("role")
	_ = c.MarkFlagRequired("name")
	return c
}

func tlsCertRevokeCommand() *cobra.Command {
	var caDir, certPath, serialHex string
	var crlDays int
	c := &cobra.Command{
		Use:   "revoke --cert FILE | --serial HEX",
		Short: "Add a certificate to the CA's CRL (DIR/crl.pem, number incremented, written atomically)",
		Long: `revoke adds a certificate's serial to the CRL in the CA folder and writes it
atomically with the next CRL number. Copy crl.pem to every host's
tls.crl_file: the daemons reload it when the file changes (or on SIGHUP) and
refuse the revoked certificate from the next handshake on, without a restart.
The CRL is valid for --crl-days: refresh it before with 'unsealer tls crl
update', since the daemons refuse every peer once it is out of date.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (certPath == "") == (serialHex == "") {
				return &confload.Error{Err: errors.New("give exactly one of --cert FILE and --serial HEX")}
			}
			ca, err := pki.LoadCA(caDir, "")
			if err != nil {
				return err
			}
			opts := pki.CRLOptions{Days: crlDays}
			var info pki.CRLInfo
			what := ""
			if certPath != "" {
				cert, err := pki.ReadCert(certPath)
				if err != nil {
					return err
				}
				what = fmt.Sprintf("%s (serial %x)", certPath, cert.SerialNumber)
				if info, err = ca.Revoke(cert, opts); err != nil {
					return tlsUsage(err)
				}
			} else {
				serial, ok := new(big.Int).SetString(strings.TrimPrefix(strings.ReplaceAll(serialHex, ":", ""), "0x"), 16)
				if !ok {
					return &confload.Error{Err: fmt.Errorf("--serial %q is not a hexadecimal number (as printed by 'openssl x509 -noout -serial')", serialHex)}
				}
				what = fmt.Sprintf("serial %x", serial)
				if info, err = ca.RevokeSerial(serial, opts); err != nil {
					return tlsUsage(err)
				}
			}
			if info.Already {
				fmt.Fprintf(cmd.OutOrStdout(), "%s is already revoked in %s (CRL number %s); nothing changed\n", what, info.Path, info.Number)
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "revoked %s\n", what)
			printCRL(cmd.OutOrStdout(), info)
			return nil
		},
	}
	c.Flags().StringVar(&caDir, "ca-dir", ".", "folder of ca.crt, ca.key and crl.pem")
	c.Flags().StringVar(&certPath, "cert", "", "certificate file to revoke")
	c.Flags().StringVar(&serialHex, "serial", "", "serial number to revoke, in hex (when the file is lost)")
	c.Flags().IntVar(&crlDays, "crl-days", pki.DefaultCRLDays, "days until the CRL's next update")
	return c
}

func tlsCRLUpdateCommand() *cobra.Command {
	var caDir string
	var crlDays int
	c := &cobra.Command{
		Use:   "update",
		Short: "Write the CRL again (or an empty one) with a fresh next-update time",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ca, err := pki.LoadCA(caDir, "")
			if err != nil {
				return err
			}
			info, err := ca.UpdateCRL(pki.CRLOptions{Days: crlDays})
			if err != nil {
				return tlsUsage(err)
			}
			printCRL(cmd.OutOrStdout(), info)
			return nil
		},
	}
	c.Flags().StringVar(&caDir, "ca-dir", ".", "folder of ca.crt, ca.key and crl.pem")
	c.Flags().IntVar(&crlDays, "crl-days", pki.DefaultCRLDays, "days until the CRL's next update")
	return c
}

func printCRL(w io.Writer, info pki.CRLInfo) {
	fmt.Fprintf(w, "wrote CRL %s: number %s, %d revoked, next update %s\n", info.Path, info.Number, info.Revoked,
		info.NextUpdate.UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "  copy it to every host's tls.crl_file; the daemons reload it on change or SIGHUP\n")
	fmt.Fprintf(w, "  run 'unsealer tls crl update' before %s: an out-of-date CRL refuses every peer\n", info.NextUpdate.UTC().Format("2006-01-02"))
}
