module example.com/pythongo

go 1.24

require github.com/ferry/ferry/golang v0.0.0

require github.com/google/pprof v0.0.0-20250630185457-6e76a2b096b5 // indirect

replace github.com/ferry/ferry/golang => ../../golang
