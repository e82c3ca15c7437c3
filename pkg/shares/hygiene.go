package shares

// Zero overwrites b with zeros. Use it on every buffer that held share or
// key bytes once it is no longer needed.
func Zero(b []byte) {
	clear(b)
}

// ZeroShares zeroes the bytes of every share.
func ZeroShares(ss []Share) {
	for i := range ss {
		Zero(ss[i].Value)
	}
}
