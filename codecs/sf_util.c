#include "sf_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

char *sf_strndup(const char *s, size_t len)
{
	char *copy = malloc(len + 1);

	if (!copy)
		return NULL;
	memcpy(copy, s, len);
	copy[len] = '\0';
	return copy;
}

char *sf_strdup(const char *s)
{
	return sf_strndup(s, strlen(s));
}

char *sf_path_join(const char *dir, const char *name)
{
	size_t dir_len = strlen(dir), name_len = strlen(name);
	int slash = dir_len > 0 && dir[dir_len - 1] != '/';
	char *path = malloc(dir_len + (size_t)slash + name_len + 1);

	if (!path)
		return NULL;
	memcpy(path, dir, dir_len);
	if (slash)
		path[dir_len] = '/';
	memcpy(path + dir_len + (size_t)slash, name, name_len + 1);
	return path;
}

static int hex_value(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Each hex digit's value plus one, by byte; 0 for every other byte. Index
   loading parses one fingerprint per file. */
static const unsigned char hex_table[256] = {
	['0'] = 1, ['1'] = 2, ['2'] = 3, ['3'] = 4, ['4'] = 5, ['5'] = 6, ['6'] = 7, ['7'] = 8,
	['8'] = 9, ['9'] = 10, ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
	['A'] = 11, ['B'] = 12, ['C'] = 13, ['D'] = 14, ['E'] = 15, ['F'] = 16,
};

int sf_parse_hex64(const char *text, uint64_t *out)
{
	uint64_t value = 0;
	int i;

	for (i = 0; i < 16; i++) {
		unsigned digit = hex_table[(unsigned char)text[i]];

		if (digit == 0)  /* not a digit, or the end of the text */
			return 0;
		value = (value << 4) | (digit - 1);
	}
	if (text[16] != '\0')
		return 0;
	*out = value;
	return 1;
}

char *sf_hex_encode(const void *data, size_t len)
{
	static const char digits[] = "0123456789abcdef";
	const unsigned char *bytes = data;
	char *hex = malloc(len * 2 + 1);
	size_t i;

	if (!hex)
		return NULL;
	for (i = 0; i < len; i++) {
		hex[2 * i] = digits[bytes[i] >> 4];
		hex[2 * i + 1] = digits[bytes[i] & 15];
	}
	hex[2 * len] = '\0';
	return hex;
}

char *sf_hex_decode(const char *hex)
{
	size_t len = strlen(hex), i;
	char *bytes;

	if (len % 2)
		return NULL;
	bytes = malloc(len / 2 + 1);
	if (!bytes)
		return NULL;
	for (i = 0; i < len / 2; i++) {
		int hi = hex_value((unsigned char)hex[2 * i]);
		int lo = hex_value((unsigned char)hex[2 * i + 1]);

		if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
			free(bytes);
			return NULL;
		}
		bytes[i] = (char)(hi << 4 | lo);
	}
	bytes[len / 2] = '\0';
	return bytes;
}

int sf_utf8_valid(const void *data, size_t len)
{
	const unsigned char *s = data, *end = s + len;

	while (s < end) {
		unsigned c = *s;
		size_t need;
		uint32_t cp, min;

		if (c < 0x80) {
			s++;
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF) {
			need = 1; cp = c & 0x1F; min = 0x80;
		} else if (c >= 0xE0 && c <= 0xEF) {
			need = 2; cp = c & 0x0F; min = 0x800;
		} else if (c >= 0xF0 && c <= 0xF4) {
			need = 3; cp = c & 0x07; min = 0x10000;
		} else {
			return 0;
		}
		if ((size_t)(end - s) <= need)
			return 0;
		for (size_t k = 1; k <= need; k++) {
			if ((s[k] & 0xC0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[k] & 0x3F);
		}
		if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return 0;
		s += need + 1;
	}
	return 1;
}

int sf_write_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

ssize_t sf_pread_full(int fd, void *buf, size_t len, uint64_t offset)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, (char *)buf + done, len - done, (off_t)(offset + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

int sf_fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc, saved;

	if (fd < 0)
		return -1;
	rc = fsync(fd);
	saved = errno;
	close(fd);
	errno = saved;
	return rc;
}

void sf_mutex_init(pthread_mutex_t *lock)
{
#ifdef SF_DEBUG_MUTEX
	pthread_mutexattr_t attr;

	pthread_mutexattr_init(&attr);
	pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ERRORCHECK);
	pthread_mutex_init(lock, &attr);
	pthread_mutexattr_destroy(&attr);
#else
	pthread_mutex_init(lock, NULL);
#endif
}
