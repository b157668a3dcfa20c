#include "sf_error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const messages[SF_ERR__COUNT] = {
	[SF_OK] = "success",
	[SF_ERR_IO] = "input/output error",
	[SF_ERR_NOMEM] = "out of memory",
	[SF_ERR_FORMAT] = "malformed input",
	[SF_ERR_CORRUPT] = "data is damaged",
	[SF_ERR_VERSION] = "unsupported store format version",
	[SF_ERR_NOTFOUND] = "not found",
	[SF_ERR_EXISTS] = "already exists",
	[SF_ERR_INVALID] = "invalid argument",
	[SF_ERR_LIMIT] = "limit exceeded",
	[SF_ERR_UNSUPPORTED] = "unsupported",
};

const char *sf_strerror(sf_err code)
{
	if ((unsigned)code >= SF_ERR__COUNT)
		return "unknown error";
	return messages[code];
}

static void set_message(sf_error *err, const char *fmt, va_list ap)
{
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
}

sf_err sf_error_set(sf_error *err, sf_err code, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return code;
	err->code = code;
	err->saved_errno = 0;
	va_start(ap, fmt);
	set_message(err, fmt, ap);
	va_end(ap);
	return code;
}

sf_err sf_error_io(sf_error *err, int errno_value, const char *fmt, ...)
{
	va_list ap;
	size_t used;

	if (!err)
		return SF_ERR_IO;
	err->code = SF_ERR_IO;
	err->saved_errno = errno_value;
	va_start(ap, fmt);
	set_message(err, fmt, ap);
	va_end(ap);
	used = strlen(err->message);
	if (used < sizeof(err->message))
		snprintf(err->message + used, sizeof(err->message) - used, ": %s",
			 strerror(errno_value));
	return SF_ERR_IO;
}

int sf_err_to_errno(sf_err code)
{
	switch (code) {
	case SF_OK:
		return 0;
	case SF_ERR_NOMEM:
		return -ENOMEM;
	case SF_ERR_NOTFOUND:
		return -ENOENT;
	case SF_ERR_EXISTS:
		return -EEXIST;
	case SF_ERR_INVALID:
		return -EINVAL;
	case SF_ERR_LIMIT:
		return -EFBIG;
	case SF_ERR_UNSUPPORTED:
		return -ENOTSUP;
	default:
		return -EIO;
	}
}
