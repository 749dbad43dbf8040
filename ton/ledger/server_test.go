package ledger

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"

	"github.com/cocoon-mesh/cocoon/ton"
)

// post sends body to path on the test server with the given content type.
func post(t *testing.T, url, contentType string, body io.Reader) (int, errorResponse) {
	t.Helper()
	res, err := http.Post(url, contentType, body)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var e errorResponse
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("answer's Content-Type %q", ct)
	}
	if err := json.NewDecoder(res.Body).Decode(&e); err != nil {
		t.Fatalf("answer is not JSON: %v", err)
	}
	return res.StatusCode, e
}

func TestServerRejectsBadRequests(t *testing.T) {
	w := newRemoteWorld(t)
	w.open()
	before := w.snapshot()
	msgs := w.messages()
	walletA := w.walletA.StringRaw()
	boc := base64.StdEncoding.EncodeToString(ton.FinishUncooperativeCloseBody().ToBOC())

	big := `{"address":"` + walletA + `","amount":"1000000000","pad":"` + strings.Repeat("x", MaxRequestBytes) + `"}`
	spaced := `{"address":"` + walletA + `","amount":"1000000000"}` + strings.Repeat(" ", MaxRequestBytes)
	cases := []struct {
		name, path, ctype, body string
		status                  int
		kind                    string
	}{
		{"oversized fund", PathFund, "application/json", big, 413, kindTooLarge},
		{"oversized by trailing space", PathFund, "application/json", spaced, 413, kindTooLarge},
		{"not JSON", PathFund, "application/json", `{"address":`, 400, kindBadRequest},
		{"empty body", PathNow, "application/json", ``, 400, kindBadRequest},
		{"null", PathNow, "application/json", `null`, 400, kindBadRequest},
		{"array", PathFund, "application/json", `[]`, 400, kindBadRequest},
		{"unknown field", PathFund, "application/json", `{"address":"` + walletA + `","amount":"1","extra":1}`, 400, kindBadRequest},
		{"two objects", PathFund, "application/json", `{"address":"` + walletA + `","amount":"1"}{}`, 400, kindBadRequest},
		{"amount as number", PathFund, "application/json", `{"address":"` + walletA + `","amount":1}`, 400, kindBadRequest},
		{"negative amount", PathFund, "application/json", `{"address":"` + walletA + `","amount":"-1"}`, 400, kindBadRequest},
		{"amount overflow", PathFund, "application/json", `{"address":"` + walletA + `","amount":"18446744073709551616"}`, 400, kindBadRequest},
		{"missing address", PathFund, "application/json", `{"amount":"1"}`, 400, kindBadRequest},
		{"bad address", PathFund, "application/json", `{"address":"0:zz","amount":"1"}`, 400, kindBadRequest},
		{"short address", PathBalance, "application/json", `{"address":"0:abcd"}`, 400, kindBadRequest},
		{"bad base64", PathCooperativeClose, "application/json", `{"channel":"` + w.channel.StringRaw() + `","body":"!!"}`, 400, kindBadRequest},
		{"bad BOC", PathCooperativeClose, "application/json", `{"channel":"` + w.channel.StringRaw() + `","body":"AAAA"}`, 400, kindBadRequest},
		{"bad StateInit", PathOpenChannel, "application/json", `{"from":"` + walletA + `","channel":"` + w.channel.StringRaw() + `","state_init":"` + boc + `","body":"` + boc + `","value":"1"}`, 400, kindBadRequest},
		{"wrong content type", PathFund, "text/plain", `{"address":"` + walletA + `","amount":"1"}`, 415, kindBadMediaType},
		{"no such endpoint", "/v1/mint", "application/json", `{}`, 404, kindNoEndpoint},
	}
	for _, c := range cases {
		status, e := post(t, w.srv.URL+c.path, c.ctype, strings.NewReader(c.body))
		if status != c.status || e.Kind != c.kind || e.Error == "" {
			t.Errorf("%s: %d %+v, want %d %s", c.name, status, e, c.status, c.kind)
		}
	}
	res, err := http.Get(w.srv.URL + PathBalance)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed || res.Header.Get("Allow") != http.MethodPost {
		t.Errorf("GET: %s", res.Status)
	}
	if after := w.snapshot(); after != before {
		t.Fatal("a rejected request changed the ledger")
	}
	if got := w.messages(); got != msgs {
		t.Fatalf("%d messages executed, want %d", got, msgs)
	}
	w.conserved()

	// The same body within the limit is served: the limit, not the content, refused it above.
	status, e := post(t, w.srv.URL+PathFund, "application/json; charset=utf-8",
		strings.NewReader(`{"address":"`+walletA+`","amount":"1"}`+strings.Repeat(" ", 1000)))
	if status != http.StatusOK || e.Kind != "" {
		t.Fatalf("valid fund: %d %+v", status, e)
	}
}

// fuzzEndpoints are the paths the fuzz target posts to, chosen by its first argument.
func fuzzEndpoints() []string {
	return []string{PathOpenChannel, PathChannel, PathBalance, PathCooperativeClose, PathStartUncooperativeClose,
		PathChallenge, PathFinishUncooperativeClose, PathNow, PathFund, PathMessages, "/v1/nothing"}
}

func FuzzServerRequest(f *testing.F) {
	l, err := NewEmbedded(context.Background(), dssync.MutexWrap(datastore.NewMapDatastore()), Options{Now: newClock().now})
	if err != nil {
		f.Fatal(err)
	}
	h := NewServer(l)
	a := testAddr(0xA).StringRaw()
	boc := base64.StdEncoding.EncodeToString(ton.FinishUncooperativeCloseBody().ToBOC())
	seeds := []string{
		`{}`, `null`, `[]`, `{"address":"` + a + `","amount":"5"}`, `{"address":"` + a + `"}`,
		`{"channel":"` + a + `","body":"` + boc + `"}`, `{"channel":"` + a + `"}`,
		`{"from":"` + a + `","channel":"` + a + `","body":"` + boc + `","value":"1"}`,
		`{"from":"` + a + `","channel":"` + a + `","state_init":"` + boc + `","body":"` + boc + `","value":"1"}`,
		`{"address":"EQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAM9c"}`, `{"body":"te6cckEBAQEAAgAAAEysuc0="}`,
	}
	for i, s := range seeds {
		for j := range fuzzEndpoints() {
			f.Add(uint8(i+j), []byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		paths := fuzzEndpoints()
		path := paths[int(which)%len(paths)]
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Fatalf("%s: Content-Type %q", path, ct)
		}
		var m map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
			t.Fatalf("%s: answer is not a JSON object: %v: %q", path, err, rec.Body.Bytes())
		}
		if rec.Code == http.StatusOK {
			return
		}
		var e errorResponse
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == "" || e.Kind == "" {
			t.Fatalf("%s: error answer %d %q", path, rec.Code, rec.Body.Bytes())
		}
		if rec.Code >= 500 {
			t.Fatalf("%s: server error %d for a client's request: %s", path, rec.Code, fmt.Sprint(e))
		}
	})
}
