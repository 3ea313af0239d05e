module github.com/bitvault/bitvault/service

go 1.26.8
