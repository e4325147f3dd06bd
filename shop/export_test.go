package shop

// SetCrashHook makes w stop, as if it crashed, right after it fulfilled an
// order for which crash returns true and before it acknowledged the job.
func SetCrashHook(w *Worker, crash func(orderID int64) bool) { w.crashAt = crash }
