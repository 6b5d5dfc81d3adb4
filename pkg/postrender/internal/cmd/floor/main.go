// Command floor is the benchmark's lower bound: it reads a manifest stream,
// splits it into documents and writes them out unchanged, doing no YAML
// parsing at all.
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"

	"github.com/kommons/kommons/pkg/postrender/internal/yamlstream"
)

func main() {
	in, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	w := bufio.NewWriterSize(os.Stdout, 1<<20)
	for _, d := range yamlstream.Split(in) {
		if _, err := w.Write(d.Raw); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	if err := w.Flush(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
