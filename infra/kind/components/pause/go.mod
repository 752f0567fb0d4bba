module consciousness-engine.local/build/pause

go 1.24.0
