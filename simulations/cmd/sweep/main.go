// Command sweep fans a sweep of simulations out as independent processes and merges what they
// wrote. A sweep file (simulations/sweeps/*.toml) names scenarios, settings to vary and how many
// seeds; `sweep jobs` prints one command line per run, for GNU parallel to run (locally, or
// over ssh); `sweep merge` summarizes each scenario's seeds and merges every run's samples.
// simulations/sweep.sh does all three. `sweep plot RUN_DIR...` draws a run's plots and report
// again from its samples.csv and run.json.
//
//	go run ./simulations/cmd/sweep jobs simulations/sweeps/baseline.toml results/baseline > jobs.txt
//	parallel -j 2 < jobs.txt
//	go run ./simulations/cmd/sweep merge results/baseline
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "sweep:", err)
		os.Exit(2)
	}
}

func run(args []string) error {
	switch {
	case len(args) == 3 && args[0] == "jobs":
		sw, err := loadSweep(args[1])
		if err != nil {
			return err
		}
		for _, j := range sw.jobs(args[2], "./sim.test") {
			fmt.Println(j)
		}
		return nil
	case len(args) == 2 && args[0] == "merge":
		return merge(args[1], os.Stdout)
	case len(args) >= 2 && args[0] == "plot":
		for _, dir := range args[1:] {
			if err := replot(dir); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("usage: sweep jobs SWEEP.toml OUT | sweep merge OUT | sweep plot RUN_DIR [RUN_DIR ...]")
}
