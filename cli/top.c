/*
 * vdctl top: vdctl status, refreshed in the terminal.
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "vd/ctlclient.h"
#include "vd/units.h"

static const char usage[] =
	"usage: vdctl top [--interval DUR] [--count N] [SERVICE...]\n"
	"\n"
	"Show what 'vdctl status' shows, refreshed every second in the terminal,\n"
	"until interrupted (or N times).\n"
	"\n"
	"options:\n"
	"   --interval DUR   time between refreshes (default 1s)\n"
	"   --count N        stop after N screens (default: until interrupted)\n"
	"   -h, --help       show this help\n"
	"\n"
	"exit status: 0 done; 2 bad arguments; 3 no controller answers\n";

int
cmd_top(int argc, char **argv, struct vd_error *err)
{
	static const struct option options[] = {
		{ "interval", required_argument, NULL, 'i' },
		{ "count", required_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct vd_error why = VD_ERROR_INIT;
	int64_t interval = 1000, count = 0;
	bool tty = isatty(STDOUT_FILENO);
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		switch (c) {
		case 'i':
			if (vd_units_parse_duration_ms(optarg, &interval, &why) < 0 || interval < 100)
				return cli_usage_error(err, "top", "invalid --interval '%s': %s",
						       optarg, why.msg[0] ? why.msg
									  : "at least 100ms");
			break;
		case 'n':
			if (vd_units_parse_int64(optarg, 1, 1000000, &count, &why) < 0)
				return cli_usage_error(err, "top", "invalid --count '%s': %s", optarg,
						       why.msg);
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			return cli_unknown_option(err, "top", options, argv[optind - 1]);
		}
	}
	for (int64_t i = 0; count == 0 || i < count; i++) {
		struct timespec ts = { interval / 1000, (interval % 1000) * 1000000 };
		json_t *st = NULL;
		int ret;

		if (i > 0)
			nanosleep(&ts, NULL);
		if (vd_ctlclient_get(cli_state_dir(), "/v1/status", &st, err) < 0)
			return -1;
		/* home and clear the screen on a terminal; a separator elsewhere */
		fputs(tty ? "\033[H\033[2J" : (i ? "\n" : ""), stdout);
		ret = cli_status_print(st, argv + optind, (size_t)(argc - optind), stdout, err);
		json_decref(st);
		fflush(stdout);
		if (ret < 0)
			return -1;
	}
	return 0;
}
