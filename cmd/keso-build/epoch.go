package main

import (
	"os/exec"
	"strconv"
	"strings"
)

// gitEpoch is the last commit's time: the default SOURCE_DATE_EPOCH, so that
// a build of a commit is reproducible without setting anything.
func gitEpoch(repo string) (int64, error) {
	out, err := exec.Command("git", "-C", repo, "log", "-1", "--format=%ct").Output()
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
}
