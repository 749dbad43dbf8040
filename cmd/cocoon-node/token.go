package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// tokenFileName is the file in a node's data dir that holds its local token: the secret the
// node's channel and wallet endpoints want when no API key is set, which only whoever can read
// the data dir knows (as Jupyter's token).
const tokenFileName = "local-token"

// tokenPath is where the node with data dir dir keeps its local token.
func tokenPath(dir string) string { return filepath.Join(dir, tokenFileName) }

// loadOrCreateToken returns the local token of the node with data dir dir, making one on its
// first start. The caller holds the data dir (its datastore is open), so no other node races
// for the file.
func loadOrCreateToken(dir string) (string, error) {
	path := tokenPath(dir)
	tok, err := readToken(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return tok, err
	}
	tok = rand.Text()                                   // 26 base32 characters: 130 random bits
	f, err := os.CreateTemp(dir, tokenFileName+".tmp*") // mode 0600
	if err != nil {
		return "", fmt.Errorf("local token: %w", err)
	}
	_, err = f.WriteString(tok + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("local token: %w", err)
	}
	return tok, nil
}

// readToken reads a local token file. One that other users can read is refused: the token
// lets its holder spend the node's money.
func readToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	if runtime.GOOS != "windows" {
		if st, err := os.Stat(path); err == nil && st.Mode().Perm()&0o077 != 0 {
			return "", fmt.Errorf("local token %s can be read by other users (mode %04o): run chmod 600 %s", path, st.Mode().Perm(), path)
		}
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) < 16 || strings.ContainsAny(tok, " \t\r\n") {
		return "", fmt.Errorf("local token %s is not one token of at least 16 characters: delete it, and the node makes a new one when it next starts", path)
	}
	return tok, nil
}
