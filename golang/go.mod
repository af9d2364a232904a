module github.com/ferry/ferry/golang

go 1.24
