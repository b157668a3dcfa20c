/*
 * check.h - the tiny assertion helper of the unit tests. Output is TAP,
 * so `prove` runs every test program and counts the results.
 *
 *   CHECK(cond, "what")          one test point
 *   CHECK_EQ_U64(a, b, "what")   prints both values on failure
 *   return check_done();         plan line and exit status
 */
#ifndef SF_CHECK_H
#define SF_CHECK_H

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>

static int check_count;
static int check_failed;

static inline int check_point(int ok, const char *file, int line,
			      const char *what)
{
	check_count++;
	if (!ok)
		check_failed++;
	printf("%sok %d - %s\n", ok ? "" : "not ", check_count, what);
	if (!ok)
		printf("#   failed at %s:%d\n", file, line);
	fflush(stdout);
	return ok;
}

#define CHECK(cond, what) check_point(!!(cond), __FILE__, __LINE__, (what))

#define CHECK_EQ_U64(a, b, what)                                              \
	do {                                                                  \
		uint64_t check_a_ = (uint64_t)(a), check_b_ = (uint64_t)(b);  \
		if (!check_point(check_a_ == check_b_, __FILE__, __LINE__,    \
				 (what)))                                     \
			printf("#   got %" PRIu64 ", expected %" PRIu64 "\n",  \
			       check_a_, check_b_);                           \
	} while (0)

static inline int check_done(void)
{
	printf("1..%d\n", check_count);
	return check_failed ? 1 : 0;
}

#endif
