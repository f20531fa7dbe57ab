//go:build !linux

package chaos

import "syscall"

// childAttr returns nil: only Linux can tie a child's life to its parent;
// elsewhere the cleanups stop the children.
func childAttr() *syscall.SysProcAttr { return nil }
