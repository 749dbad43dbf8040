package backend

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"unicode/utf8"
)

var sampleChunk = []byte(`{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1795315226,"model":"m","choices":[{"index":0,"delta":{"content":" from"},"logprobs":null,"finish_reason":null}],"usage":null}`)

func FuzzSkimMatchesEncodingJSON(f *testing.F) {
	for _, s := range []string{
		string(sampleChunk),
		`{"object":"error","message":"bad","code":400}`,
		`{"error":{"message":"x","code":"y"}}`,
		`{"choices":[{"text":"a"},null,{"message":{"content":null,"tool_calls":[{"id":"\""}]}}],"usage":{"prompt_tokens":1}}`,
		`{"OBJECT":"x","Choices":null,"ch\u006fices":[{"Delta":{"Content":"a"}}]}`,
		`{"choices":[1]}`, `{"object":7}`, `{"choices":[{"delta":"x"}]}`, `{"object":"\u00e9\ud800"}`, "{\"\xff\":0}",
		`{"choices":[{"delta":{"content":"a"}},{"delta":{"content":"b"}}],"choices":[]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !validObject(data) {
			return // not one JSON object in UTF-8: FuzzCheckAnswer has it refused
		}
		var want, got answer
		werr := json.Unmarshal(data, &want)
		gerr := skimAnswer(data, &got)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("%s: encoding/json says %v, skim says %v", data, werr, gerr)
		}
		if werr == nil && !reflect.DeepEqual(normalize(want), normalize(got)) {
			t.Fatalf("%s:\nencoding/json %+v\nskim          %+v", data, want, got)
		}
	})
}

// normalize drops the difference between nil and empty raw values, which no reader tells apart.
func normalize(a answer) answer {
	for i := range a.Choices {
		if len(a.Choices[i].Text) == 0 {
			a.Choices[i].Text = nil
		}
	}
	return a
}

func BenchmarkSkimAnswer(b *testing.B) {
	for b.Loop() {
		var a answer
		if err := a.decode(sampleChunk); err != nil {
			b.Fatal(err)
		}
	}
}

// usageOfJSON is usageOf as encoding/json reads it, the reference for the skimmer.
func usageOfJSON(raw []byte) (Usage, bool) {
	var w struct {
		PromptTokens        count `json:"prompt_tokens"`
		CompletionTokens    count `json:"completion_tokens"`
		PromptTokensDetails *struct {
			CachedTokens count `json:"cached_tokens"`
		} `json:"prompt_tokens_details"`
		CompletionTokensDetails *struct {
			ReasoningTokens count `json:"reasoning_tokens"`
		} `json:"completion_tokens_details"`
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' || json.Unmarshal(raw, &w) != nil {
		return Usage{}, false
	}
	u := Usage{Prompt: int(w.PromptTokens), Completion: int(w.CompletionTokens)}
	if d := w.PromptTokensDetails; d != nil {
		u.Cached = min(int(d.CachedTokens), u.Prompt)
	}
	if d := w.CompletionTokensDetails; d != nil {
		u.Reasoning = min(int(d.ReasoningTokens), u.Completion)
	}
	return u, true
}

func FuzzUsageSkimMatchesEncodingJSON(f *testing.F) {
	for _, s := range []string{
		`{"prompt_tokens":3,"completion_tokens":5,"total_tokens":8}`,
		`{"prompt_tokens":3,"prompt_tokens_details":{"cached_tokens":9},"completion_tokens_details":null}`,
		`{"completion_tokens":2.7,"completion_tokens_details":{"reasoning_tokens":1e30}}`,
		`{"prompt_tokens_details":7}`, `{"Prompt_Tokens":"4","completion_tokens":-1}`,
		`{"prompt_tokens_details":{"cached_tokens":1},"prompt_tokens_details":null}`, "{\"\xbb\":0}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if !json.Valid(raw) || !utf8.Valid(raw) {
			return // usageOf reads parts of answers the scanner validated
		}
		wu, wok := usageOfJSON(raw)
		gu, gok := usageOf(raw)
		if wu != gu || wok != gok {
			t.Fatalf("%s: encoding/json %+v %v, skim %+v %v", raw, wu, wok, gu, gok)
		}
	})
}

func FuzzSkimNeverPanics(f *testing.F) {
	for _, s := range []string{`{"a":[}`, `{"choices":[{"delta":{"content":"x"}}`, `{"usage":{"prompt_tokens":}}`, `{`, `{"a"`, `{"a":`, `{"a":1,}`, `{"a":"\\`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var a answer
		_ = a.decode(data)
		_, _ = usageOf(data)
		_, _ = objectFields(data)
	})
}
