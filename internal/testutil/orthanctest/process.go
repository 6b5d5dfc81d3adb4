package orthanctest

// StartProcess starts Orthanc as Start does, for programs that are not
// tests (the demo under test/demo): it waits until Orthanc answers /system
// and returns an error with the tail of Orthanc's log on failure. The caller
// stops the process with Stop. Like Start, it must run inside a private
// network namespace (Orthanc listens on 0.0.0.0).
func StartProcess(o Options) (*Instance, error) { return start(o) }
