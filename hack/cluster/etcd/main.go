// Command etcd is upstream etcd's server main (server/main.go), built as a small module.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
