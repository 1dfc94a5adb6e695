/* layerdiff/error.h — status codes and the error record every layerdiff library call fills.
 * Libraries never print or exit: they return an ld_status and, when given one, fill an ld_error
 * with a message that names the file, line or tensor at fault. Only main() maps codes to exits. */
#ifndef LAYERDIFF_ERROR_H
#define LAYERDIFF_ERROR_H

#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One table generates the enum and the names. The third column is the process exit code the
 * CLI uses for an error of that kind (2 = bad usage or input, 3 = incomplete). */
#define LD_STATUS_TABLE(X)                                                                         \
    X(LD_OK, "ok", 0)                                                                              \
    X(LD_E_USAGE, "bad usage", 2)                                                                  \
    X(LD_E_INPUT, "bad input", 2)                                                                  \
    X(LD_E_UNSUPPORTED, "unsupported", 2)                                                          \
    X(LD_E_IO, "I/O error", 2)                                                                     \
    X(LD_E_NOMEM, "out of memory", 2)                                                              \
    X(LD_E_TRUNCATED, "stream truncated", 3)                                                       \
    X(LD_E_NODEVICE, "no CUDA device", 2)                                                          \
    X(LD_E_DEVICE, "device error", 2)                                                              \
    X(LD_E_INTERNAL, "internal error", 2)

typedef enum ld_status {
#define LD_STATUS_ENUM_(name, text, exit_code) name,
    LD_STATUS_TABLE(LD_STATUS_ENUM_)
#undef LD_STATUS_ENUM_
        LD_STATUS_COUNT
} ld_status;

#define LD_ERROR_MSG_MAX 2048

/* Filled by a failing call. The message is a full sentence fragment without trailing newline. */
typedef struct ld_error {
    ld_status code;
    char msg[LD_ERROR_MSG_MAX];
} ld_error;

/* "bad input", "stream truncated", ... */
const char *ld_status_name(ld_status s);
/* The CLI exit code for an error of this kind. */
int ld_status_exit_code(ld_status s);

/* Sets err (which may be NULL) to code and the formatted message; returns code. */
ld_status ld_error_set(ld_error *err, ld_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
ld_status ld_error_setv(ld_error *err, ld_status code, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
/* Prepends "<formatted>: " to the existing message (to add a file name or a key); returns code. */
ld_status ld_error_prefix(ld_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Resets err to LD_OK with an empty message. NULL is accepted. */
void ld_error_clear(ld_error *err);

#ifdef __cplusplus
}
#endif
#endif
