module github.com/nexvitad/nexvitad/examples/go

go 1.22

require github.com/nexvitad/nexvitad/bindings/go v0.0.0

// The binding from this repository; drop this line to use a published version.
replace github.com/nexvitad/nexvitad/bindings/go => ../../bindings/go
