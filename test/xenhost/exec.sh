#!/usr/bin/env bash
# Runs one command in the booted dom0 through the control channel (SSH, see boot.sh):
#   exec.sh 'xl list | grep Domain-0'
# Like `ssh host ARGS`: the arguments are joined with spaces and run by bash in dom0. stdin is
# forwarded; stdout, stderr and the exit status come back (255 = the channel itself failed).
# Without arguments: an interactive login shell. Needs KRATA_XENHOST_STATE, set by boot.sh.
state=${KRATA_XENHOST_STATE:?"no xenhost: run this under test/xenhost/boot.sh"}
exec ssh -F "$state/ssh_config" xenhost "$@"
