/*
 * vdctl report RESULTS.json --html OUT.html: draw what `vdctl load --output`
 * recorded as one self-contained HTML page of SVG charts.
 */
#include <getopt.h>
#include <stdio.h>

#include "cli.h"
#include "vd/loadgen.h"

static const char usage[] =
	"usage: vdctl report RESULTS.json --html OUT.html\n"
	"\n"
	"Make one self-contained HTML page from the results `vdctl load --output`\n"
	"wrote: the summary, and requests per second, response-time percentiles\n"
	"(median, p95, p99) and users over time as SVG charts. OUT.html may not be\n"
	"RESULTS.json itself, under any name: that exits 2, the results untouched.\n"
	"\n"
	"options:\n"
	"   --html FILE   where to write the page\n"
	"   -h, --help    show this help\n";

int
cmd_report(int argc, char **argv, struct vd_error *err)
{
	static const struct option options[] = {
		{ "html", required_argument, NULL, 'H' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *html = NULL;
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		switch (c) {
		case 'H':
			html = optarg;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			return cli_unknown_option(err, "report", options, argv[optind - 1]);
		}
	}
	if (optind + 1 != argc)
		return cli_usage_error(err, "report", optind == argc ? "no RESULTS.json given" :
				       "one RESULTS.json at a time");
	if (!html)
		return cli_usage_error(err, "report", "no --html OUT.html given");
	if (vd_load_report_html(argv[optind], html, err) < 0)
		return -1;
	printf("wrote %s\n", html);
	return 0;
}
