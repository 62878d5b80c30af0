module github.com/nexvitad/nexvitad/bindings/go

go 1.22
