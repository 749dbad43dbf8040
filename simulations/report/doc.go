// Package report writes what a simulation measured, so a run can be read
// by a person and re-analysed by a program.
//
// WriteRun writes one run (one scenario, one seed) into a directory:
//
//	samples.csv   every sample, long format: t_s,metric,labels,value
//	run.json      the run's headline figures (ReadRun reads it back)
//	plots/*.png   latency and TTFT CDFs, requests and adversary share over
//	              time, queueing, payments, chain operations, gossip, nodes,
//	              discovery and recovery times; each only when it has data
//	report.md     a short report linking the plots and samples.csv
//
// Summarize and WriteSummary turn several seeds of one scenario into
// summary.json and summary.md: each figure's mean and 95% confidence
// interval. MergeCSV joins the samples.csv files of runs made by separate
// processes into one CSV with scenario and seed columns.
package report
