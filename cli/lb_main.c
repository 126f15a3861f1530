/*
 * vdctl-lb: `vdctl balance` in a lean binary. vdctl itself links libvirt,
 * libcurl, libyaml and jansson, whose pages (about 12 MB resident) a proxy
 * has no use for; `vdctl balance` executes this sibling when it finds it, so
 * the balancer process carries the event loop, the proxy, the histograms
 * and http-parser, and libc.
 */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "vd/log.h"

int
main(int argc, char **argv)
{
	struct vd_error err = VD_ERROR_INIT;
	const char *env = getenv("VDCTL_LOG");
	int level = env ? vd_log_parse_level(env) : -1;
	int ret;

	vd_log_set_level(level >= 0 ? (enum vd_log_level)level : VD_LOG_INFO);
	ret = cmd_balance(argc, argv, &err);
	if (ret < 0) {
		vd_error_print(&err, "vdctl");
		return err.code ? err.code : VD_EXIT_FAILURE;
	}
	return ret;
}
