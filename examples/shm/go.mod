module example.com/ferryshm

go 1.24

require github.com/ferry/ferry/golang v0.0.0

replace github.com/ferry/ferry/golang => ../../golang
