package wire

import (
	"fmt"
	"strings"
)

// ModelID is a model's full identity as COCOON pins models: "name@revision:hash".
// The hash is taken over the weights, so two workers advertising one ID serve the same model.
type ModelID struct {
	Name, Revision, Hash string
}

// String returns "name@revision:hash".
func (m ModelID) String() string { return m.Name + "@" + m.Revision + ":" + m.Hash }

// ParseModelID parses "name@revision:hash"; every part must be present.
func ParseModelID(s string) (ModelID, error) {
	at := strings.LastIndexByte(s, '@')
	if at <= 0 {
		return ModelID{}, fmt.Errorf("model id %q: want name@revision:hash", s)
	}
	rest := s[at+1:]
	colon := strings.IndexByte(rest, ':')
	if colon <= 0 || colon == len(rest)-1 {
		return ModelID{}, fmt.Errorf("model id %q: want name@revision:hash", s)
	}
	m := ModelID{Name: s[:at], Revision: rest[:colon], Hash: rest[colon+1:]}
	for _, part := range []struct{ what, v, extra string }{
		{"name", m.Name, "./-_"}, {"revision", m.Revision, ".-_"}, {"hash", m.Hash, ""},
	} {
		if len(part.v) > 128 {
			return ModelID{}, fmt.Errorf("model id %q: %s longer than 128 bytes", s, part.what)
		}
		for _, r := range part.v {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(part.extra, r)) {
				return ModelID{}, fmt.Errorf("model id %q: %s may not contain %q", s, part.what, r)
			}
		}
	}
	return m, nil
}
