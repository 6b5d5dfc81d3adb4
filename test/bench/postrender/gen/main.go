// Command gen writes a generated manifest stream of typical chart output to
// stdout: gen -n 10000 > stream.yaml.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/kommons/kommons/test/bench/postrender/manifestgen"
)

func main() {
	n := flag.Int("n", 1000, "number of documents")
	flag.Parse()
	if _, err := os.Stdout.Write(manifestgen.Generate(*n)); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
