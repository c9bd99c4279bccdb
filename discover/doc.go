// Package discover finds host device nodes for a resource: the paths that
// globs match (optionally only those of given USB devices, found through
// sysfs), or several matches tied into one device by a key. A Watcher
// follows hotplug.
//
// Every filesystem access is under a root ("/" on a host, the host's mount
// in a container, a temp dir in tests), and symlinks resolve inside it, so
// a link in the host's /dev never leads to the container's own files.
package discover
