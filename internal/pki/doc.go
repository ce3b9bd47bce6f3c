// Package pki creates FlowFleet's certificate authority and issues the certificates that
// internal/auth accepts. It backs `flowctl certs` (internal/ctl/certs.go) and the test PKI (pkitest). It is
// a library: no cobra or viper here.
//
// # What it makes
//
//   - A CA: a self-signed ECDSA P-256 certificate (ca.pem) and its key (ca-key.pem, mode 0600), valid
//     for 10 years by default, whose URI SAN spiffe://<trust-domain> records the trust domain.
//   - Leaf certificates, ECDSA P-256, valid for 365 days by default, each with exactly one URI SAN
//     spiffe://<trust-domain>/<role>/<name>. Roles sensor, reader and admin get client-auth
//     certificates; role collector gets a server certificate (server and client auth) with DNS and IP
//     SANs, by default localhost and 127.0.0.1.
//
// Files are written as <role>-<name>.pem and <role>-<name>-key.pem. A private key is never written
// over: writing fails if the certificate or key file exists, unless Force is set, in which case each
// file is replaced atomically (temporary file and rename; key first, then certificate). Keys are written mode 0600, certificates
// 0644. No private key belongs in git; the repository's .gitignore excludes *-key.pem and *.key.
//
// # Usage
//
//	ca, err := pki.InitCA(pki.InitOptions{Dir: "/etc/flowfleet/pki"}) // or pki.LoadCA(dir)
//	leaf, err := ca.Issue(pki.IssueOptions{Role: auth.RoleSensor, Name: "web01"})
//	paths, err := leaf.WriteFiles("/etc/flowfleet/pki", false)
//
// The types are plain values; a CA may issue from several goroutines at once.
package pki
