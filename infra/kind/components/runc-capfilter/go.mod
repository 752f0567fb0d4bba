module consciousness-engine.local/build/runc-capfilter

go 1.24.0

require github.com/moby/sys/capability v0.5.0
