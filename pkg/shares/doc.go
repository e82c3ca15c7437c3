// Package shares is keyshare's model of Vault unseal-key shares and of how a
// holder keeps them.
//
// The pieces fit together like this:
//
//   - Share is one Vault unseal-key share: its index in the dealt plan and
//     its bytes (33 for a 32-byte key: 32 bytes of y-values and the
//     x-coordinate tag last, as github.com/hashicorp/vault/shamir lays them
//     out). ParseShare and ParseShares read the hex or base64 forms Vault
//     prints and accepts.
//   - Plan says how many shares there are, the threshold, and how many each
//     holder gets (default 5 shares, threshold 3, dealt 2/2/1), and reports
//     which holders together can unseal and how many may fail.
//   - Manifest records a domain-separated SHA-256 digest of every share of a
//     generation. Every holder stores the whole manifest, and a coordinator
//     submits only shares that match it. CheckConsistent uses Shamir itself
//     to spot a bad share among threshold+1 or more.
//   - The sealed file format (Seal, Open) keeps a holder's shares encrypted
//     with XChaCha20-Poly1305 under a key from a SealKey source (key file,
//     argon2id passphrase, systemd credential), bound to the holder's ID,
//     the generation and the share indices.
//   - Store keeps the current generation, a staged one (two-phase init and
//     rekey) and the older committed ones still needed, with atomic writes
//     and strict permissions. A commit never deletes the generation it
//     replaces: a kept generation goes only once a newer one has unsealed a
//     Vault node (Prove), and the last two committed always stay. The
//     store's state and its generation high-water mark are authenticated
//     under the seal key (storefile.go), so an old state put back is
//     refused (ErrRollback) rather than re-opening a retired generation.
//   - Zero, Mlock and DisableCoreDumps keep share bytes out of swap, core
//     files and stale memory as far as the platform allows.
//
// Nothing in this package prints share bytes: Share's String, GoString and
// slog LogValue are redacted.
package shares
