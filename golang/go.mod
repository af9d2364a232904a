module github.com/ferry/ferry/golang

go 1.24

require github.com/google/pprof v0.0.0-20250630185457-6e76a2b096b5
