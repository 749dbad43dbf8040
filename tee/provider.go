package tee

// Provider produces evidence over 64 bytes of report data.
type Provider interface {
	// Kind says what the evidence will be; a node logs a loud warning when it is KindSimulated.
	Kind() Kind
	// Attest returns fresh evidence whose report data is exactly reportData.
	Attest(reportData [64]byte) (Evidence, error)
}
