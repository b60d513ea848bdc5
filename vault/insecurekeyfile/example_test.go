package insecurekeyfile_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/socialcrm/socialcrm/vault/insecurekeyfile"
)

func ExampleOpen() {
	dir, err := os.MkdirTemp("", "vault-kek-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "kek.json")

	kek, err := insecurekeyfile.Open(path) // created on first use
	if err != nil {
		fmt.Println(err)
		return
	}
	fi, _ := os.Stat(path)
	fmt.Println(fi.Mode().Perm(), kek.Versions())

	// A file others can read is refused.
	_ = os.Chmod(path, 0o644)
	_, err = insecurekeyfile.Open(path)
	fmt.Println(errors.Is(err, insecurekeyfile.ErrNotPrivate))
	// Output:
	// -rw------- 1
	// true
}
