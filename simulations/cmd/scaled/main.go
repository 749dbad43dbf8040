// Command scaled runs the scaled model of reputation and routing (package
// simulations/scaled): synthetic workers, the real routing.Table and reputation.Book at each
// proxy, in virtual time. It writes one CSV row per virtual minute and prints the summary.
//
//	go run ./simulations/cmd/scaled -workers 100000 -proxies 20 -hours 24 -seed 1 -csv /tmp/scaled.csv
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"time"

	"github.com/cocoon-mesh/cocoon/simulations/scaled"
)

func main() {
	if os.Getenv("GOGC") == "" {
		// Pick allocates a candidate slice the size of the proxy's table on every call (650 KB
		// at 5,000 workers): at the default GOGC=100 the collector takes a third of the run.
		debug.SetGCPercent(400)
	}
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "scaled:", err)
		os.Exit(2)
	}
}

// run parses args, runs the model and prints its summary to out.
func run(args []string, out io.Writer) error {
	cfg, csvPath, err := parse(args)
	if err != nil {
		return err
	}
	m, err := scaled.New(cfg)
	if err != nil {
		return err
	}
	var csv io.Writer
	if csvPath != "" {
		f, err := os.Create(csvPath)
		if err != nil {
			return fmt.Errorf("-csv: %w", err)
		}
		defer f.Close()
		csv = f
	}
	sum, err := m.Run(csv)
	if err != nil {
		return err
	}
	if f, ok := csv.(*os.File); ok {
		if err := f.Close(); err != nil {
			return fmt.Errorf("-csv: %w", err)
		}
	}
	_, err = fmt.Fprint(out, sum)
	return err
}

// parse reads the flags into a configuration (validated) and the CSV path.
func parse(args []string) (scaled.Config, string, error) {
	c := scaled.DefaultConfig()
	fs := flag.NewFlagSet("scaled", flag.ContinueOnError)
	fs.Uint64Var(&c.Seed, "seed", c.Seed, "random seed: the same seed gives the same run")
	fs.IntVar(&c.Workers, "workers", c.Workers, "synthetic workers")
	fs.IntVar(&c.Proxies, "proxies", c.Proxies, "proxies, each with its own routing table and reputation book")
	fs.IntVar(&c.Reach, "reach", c.Reach, "proxies each worker advertises to (Sybils advertise to all)")
	hours := fs.Float64("hours", c.Duration.Hours(), "virtual hours to run")
	fs.Float64Var(&c.Rate, "rate", c.Rate, "requests per virtual second, Poisson, canaries included")
	fs.IntVar(&c.Models, "models", c.Models, "models; each worker serves one")
	fs.Float64Var(&c.Wrong, "wrong", c.Wrong, "fraction of workers always answering wrong")
	fs.Float64Var(&c.Stallers, "stallers", c.Stallers, "fraction of workers stalling mid-answer")
	fs.Float64Var(&c.Liars, "liars", c.Liars, "fraction of workers lying about capacity (busy whenever routed)")
	fs.Float64Var(&c.Flash, "flash", c.Flash, "fraction of covert-flash workers (honest, then wrong from -flash-after)")
	fs.Float64Var(&c.Churn, "churn", c.Churn, "fraction of honest workers that leave and come back")
	fs.IntVar(&c.Sybils, "sybils", c.Sybils, "always-wrong identities on one platform (of -workers)")
	fs.DurationVar(&c.FlashAfter, "flash-after", c.FlashAfter, "virtual time at which covert-flash workers turn wrong")
	fs.DurationVar(&c.ChurnUp, "churn-up", c.ChurnUp, "mean online spell of a churning worker")
	fs.DurationVar(&c.ChurnDown, "churn-down", c.ChurnDown, "mean offline spell of a churning worker")
	fs.Float64Var(&c.HonestFail, "honest-fail", c.HonestFail, "chance an honest attempt fails early anyway")
	fs.Float64Var(&c.AuditRate, "audit", c.AuditRate, "share of requests that are the proxy's canaries")
	fs.IntVar(&c.MaxActive, "max-active", c.MaxActive, "concurrent requests each worker advertises")
	fs.IntVar(&c.MaxAttempts, "attempts", c.MaxAttempts, "attempts per request (failover)")
	fs.DurationVar(&c.Service, "service", c.Service, "median of the workers' median service times")
	fs.Float64Var(&c.ServiceSpread, "service-spread", c.ServiceSpread, "sigma of log service time across workers")
	fs.DurationVar(&c.ConnectTimeout, "connect-timeout", c.ConnectTimeout, "time an attempt on a worker that left takes to fail")
	fs.DurationVar(&c.AdvertEvery, "advert-every", c.AdvertEvery, "capacity advert period (whole seconds)")
	fs.DurationVar(&c.ExpireEvery, "expire-every", c.ExpireEvery, "routing table Expire period")
	fs.IntVar(&c.Samples, "samples", c.Samples, "honest workers sampled per proxy per minute for the p10 score")
	csv := fs.String("csv", "", "write the per-minute CSV here (empty: none)")
	if err := fs.Parse(args); err != nil {
		return c, "", err
	}
	if fs.NArg() > 0 {
		return c, "", fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if !(*hours > 0) || *hours > 24*365 {
		return c, "", fmt.Errorf("-hours: must be positive and at most a year, got %v", *hours)
	}
	c.Duration = time.Duration(*hours * float64(time.Hour))
	return c, *csv, c.Validate()
}
