package scaled

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// small is the CI model: 2,000 workers, 4 proxies, 30 virtual minutes, with more adversaries
// than the default and the covert flash workers turning at minute 10, so every rule fires.
func small(seed uint64) Config {
	c := DefaultConfig()
	c.Seed, c.Workers, c.Proxies, c.Duration, c.Rate = seed, 2000, 4, 30*time.Minute, 10
	c.Wrong, c.Flash, c.Sybils, c.FlashAfter = 0.05, 0.02, 100, 10*time.Minute
	return c
}

// run runs cfg and returns its summary and CSV.
func run(t *testing.T, cfg Config) (Summary, []byte) {
	t.Helper()
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var csv bytes.Buffer
	s, err := m.Run(&csv)
	if err != nil {
		t.Fatal(err)
	}
	return s, csv.Bytes()
}

func TestSmallModel(t *testing.T) {
	s, csv := run(t, small(1))
	t.Log("\n" + s.String())
	if s.Minutes != 30 {
		t.Errorf("%d minute buckets, want 30", s.Minutes)
	}
	if rows := strings.Count(string(csv), "\n"); rows != 31 {
		t.Errorf("CSV has %d lines, want a header and 30 rows", rows)
	}
	a := &s.after10
	if a.servedRight+a.servedWrong < 5000 {
		t.Fatalf("only %d answers after minute 10: the model is not carrying traffic", a.servedRight+a.servedWrong)
	}
	// Always-wrong workers are 5% of the workers, and the Sybils 8 more at each proxy of about
	// 500 (the cap), as fast as the honest ones: without reputation they would deliver about
	// 6% of the answers. Seeds 1-6 measured 0.4-1.2% after minute 10.
	if share := float64(a.srv[Wrong]+a.srv[Sybil]) / float64(a.servedRight+a.servedWrong); share > 0.025 {
		t.Errorf("always-wrong share of answers after minute 10 = %.4f, want at most 0.025", share)
	}
	if s.Total.auditsFailed == 0 || s.FlashCaught == 0 {
		t.Errorf("audits caught %d wrong answers and %d flash workers: want some of each", s.Total.auditsFailed, s.FlashCaught)
	}
	if s.HonestBanned != 0 || s.HonestZeroSampled != 0 || s.HonestAuditFailed != 0 {
		t.Errorf("honest banned %d, sampled at zero %d, failed audits %d: want 0", s.HonestBanned, s.HonestZeroSampled, s.HonestAuditFailed)
	}
	if p10 := s.HonestP10Min; !(p10 > 0.5) {
		t.Errorf("honest p10 score fell to %.4f, want above one half", p10)
	}
	if s.Total.srv[Staller] != 0 || s.Total.srv[Liar] != 0 {
		t.Errorf("stallers and liars delivered %d and %d answers, want none", s.Total.srv[Staller], s.Total.srv[Liar])
	}
	if s.SybilAttempted != 100*4 || s.SybilMaxPerProxy > s.PerPlatform || s.SybilAccepted > s.PerPlatform*4 {
		t.Errorf("Sybil identities: %d attempted, %d accepted, at most %d at a proxy (cap %d): want 400 attempted and the cap held",
			s.SybilAttempted, s.SybilAccepted, s.SybilMaxPerProxy, s.PerPlatform)
	}
}

func TestDeterminism(t *testing.T) {
	cfg := small(7)
	cfg.Duration = 10 * time.Minute
	_, a := run(t, cfg)
	_, b := run(t, cfg)
	if !bytes.Equal(a, b) {
		t.Error("the same seed gave different CSVs")
	}
	cfg.Seed = 8
	if _, c := run(t, cfg); bytes.Equal(a, c) {
		t.Error("seeds 7 and 8 gave the same CSV")
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		flag string
		edit func(*Config)
	}{
		{"-workers", func(c *Config) { c.Workers = 0 }},
		{"-reach", func(c *Config) { c.Reach = c.Proxies + 1 }},
		{"-rate", func(c *Config) { c.Rate = -1 }},
		{"-wrong", func(c *Config) { c.Wrong, c.Churn = 0.6, 0.6 }},
		{"-audit", func(c *Config) { c.AuditRate = 1.5 }},
		{"-sybils", func(c *Config) { c.Sybils = c.Workers }},
		{"-advert-every", func(c *Config) { c.AdvertEvery = 1500 * time.Millisecond }},
	} {
		c := DefaultConfig()
		tc.edit(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.flag+":") {
			t.Errorf("%s: Validate() = %v, want an error naming %s", tc.flag, err, tc.flag)
		}
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("DefaultConfig: %v", err)
	}
}
