// Command corpus writes the training corpus of the project's embedded model to stdout: the doc
// comments of the Go standard library, read from the Go installation that runs it
// ($(go env GOROOT)/src). They are English prose under the Go project's BSD-3-Clause licence
// (Copyright The Go Authors), which permits redistributing works derived from them; the
// weights trained on them carry that notice (model/weights/NOTICE).
package main

import (
	"bufio"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

func main() {
	goroot, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		fmt.Fprintln(os.Stderr, "corpus: cannot find the Go installation:", err)
		os.Exit(1)
	}
	root := filepath.Join(strings.TrimSpace(string(goroot)), "src")
	var files []string
	filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		name := d.Name()
		if d.IsDir() && (name == "testdata" || name == "vendor" || name == "internal" || name == "cmd") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, "_test.go") {
			files = append(files, path)
		}
		return nil
	})
	sort.Strings(files) // the same corpus on every machine with the same Go
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	fset := token.NewFileSet()
	for _, path := range files {
		f, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
		if err != nil {
			continue
		}
		emit := func(cg *ast.CommentGroup) {
			if cg == nil {
				return
			}
			text := strings.TrimSpace(cg.Text())
			if len(text) < 40 || strings.Contains(text, "Code generated") || strings.Contains(text, "Copyright") {
				return
			}
			fmt.Fprintf(w, "%s\n\n", text)
		}
		emit(f.Doc)
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				if d.Name.IsExported() {
					emit(d.Doc)
				}
			case *ast.GenDecl:
				emit(d.Doc)
			}
		}
	}
}
