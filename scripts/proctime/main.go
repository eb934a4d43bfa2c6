// Command proctime prints the median wall time of whole processes, run in
// turn so that the machine's load falls on each alike:
//
//	proctime -n 30 'docker context ls' 'docker tls --help'
//
// Each argument is one command, split on spaces (no shell, so no shell's
// start-up in the figure). A command that fails stops the run.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"
)

func main() {
	n := flag.Int("n", 30, "runs of each command")
	flag.Parse()
	cmds := flag.Args()
	if len(cmds) == 0 || *n < 1 {
		fmt.Fprintln(os.Stderr, "usage: proctime [-n RUNS] 'COMMAND ARGS' …")
		os.Exit(2)
	}
	times := make([][]time.Duration, len(cmds))
	for run := 0; run < *n; run++ {
		for i, c := range cmds {
			f := strings.Fields(c)
			cmd := exec.Command(f[0], f[1:]...)
			start := time.Now()
			if out, err := cmd.CombinedOutput(); err != nil {
				fmt.Fprintf(os.Stderr, "%s: %v\n%s", c, err, out)
				os.Exit(1)
			}
			times[i] = append(times[i], time.Since(start))
		}
	}
	for i, c := range cmds {
		slices.Sort(times[i])
		fmt.Printf("%.1f\t%s\n", float64(times[i][len(times[i])/2].Microseconds())/1000, c)
	}
}
