package model

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// HashLen is how many hex digits of the SHA-256 of a weights file pin a model ("name@rev:hash").
const HashLen = 16

// WeightsHash is the hash part of a model identity: the first HashLen hex digits of the
// SHA-256 of the weights file, as COCOON pins models by their weights.
func WeightsHash(file []byte) string {
	sum := sha256.Sum256(file)
	return hex.EncodeToString(sum[:])[:HashLen]
}

// CheckHash refuses a weights file whose hash is not the one the model identity pins.
func CheckHash(file []byte, pinned string) error {
	if got := WeightsHash(file); got != pinned {
		return fmt.Errorf("model: weights file hashes to %s, but the model identity pins %s: wrong file, or update the identity", got, pinned)
	}
	return nil
}
