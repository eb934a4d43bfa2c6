// Command docker-tls is the docker-tls Docker CLI plugin (package
// pluginmain). It links no database driver, so that it starts fast: the
// commands that open a CA's database run in docker-tls-db, installed beside
// it (package dbhelper).
package main

import "github.com/docker-tls/docker-tls/internal/pluginmain"

// version is stamped by the Makefile (-X main.version=…).
var version = "dev"

func main() { pluginmain.Main(version) }
