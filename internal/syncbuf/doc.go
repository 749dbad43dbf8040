// Package syncbuf has a byte buffer that many goroutines may write while another reads it: a
// test's view of the logs of the nodes or processes it runs.
package syncbuf
