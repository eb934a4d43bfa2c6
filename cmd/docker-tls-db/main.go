// Command docker-tls-db is docker-tls with the SQLite and PostgreSQL
// drivers linked: the plugin hands it the commands that open a CA's
// database (package dbhelper). It is installed as
// CLI-PLUGINS/docker-tls.d/docker-tls-db, and run on its own it is a whole
// docker-tls.
package main

import (
	"github.com/docker-tls/docker-tls/internal/pluginmain"
	_ "github.com/docker-tls/docker-tls/remoteca/drivers"
)

// version is stamped by the Makefile (-X main.version=…).
var version = "dev"

func main() { pluginmain.Main(version) }
