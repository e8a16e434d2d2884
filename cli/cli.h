/* cli.h: shared by the CLI's files: argument helpers and the commands. */
#ifndef IMGSEARCH_CLI_H
#define IMGSEARCH_CLI_H

#include "cli/client.h"

enum { CLI_OK = 0, CLI_API = 1, CLI_USAGE = 2 };

/* Arguments left after the global options; options are taken out of them. */
struct args {
    int n;
    char **v;
};

/* Removes "--name VALUE" (or "--name=VALUE") from a; NULL when absent. */
const char *arg_take(struct args *a, const char *name);
/* Removes "--name"; 1 when it was there. */
int arg_flag(struct args *a, const char *name);
/* 1 when a still holds something starting with "--" (an unknown option). */
int arg_unknown(const struct args *a);
/* Prints help and returns 1 when --help or -h was given. */
int arg_help(struct args *a, const char *help);
/* The COMMAND SUB preamble: --help, a missing SUB (usage on stderr), else
 * takes SUB into *sub and returns -1 for the caller to dispatch on. */
int arg_subcommand(struct args *a, const char *help, const char **sub);

int cmd_instance(const struct client *cl, struct args *a);
int cmd_import(const struct client *cl, struct args *a);
int cmd_add(const struct client *cl, struct args *a);
int cmd_search(const struct client *cl, struct args *a);
int cmd_check(const struct client *cl, struct args *a);

#endif
