/* error.c — status names, exit codes and the ld_error helpers (layerdiff/error.h). */
#include <stdio.h>
#include <string.h>

#include "layerdiff/error.h"

static const struct {
    const char *name;
    int exit_code;
} status_info[] = {
#define LD_STATUS_INFO_(e, text, exit_code) {text, exit_code},
    LD_STATUS_TABLE(LD_STATUS_INFO_)
#undef LD_STATUS_INFO_
};

const char *ld_status_name(ld_status s)
{
    if ((int)s < 0 || s >= LD_STATUS_COUNT)
        return "unknown status";
    return status_info[s].name;
}

int ld_status_exit_code(ld_status s)
{
    if ((int)s < 0 || s >= LD_STATUS_COUNT)
        return 2;
    return status_info[s].exit_code;
}

ld_status ld_error_setv(ld_error *err, ld_status code, const char *fmt, va_list ap)
{
    if (err) {
        err->code = code;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    }
    return code;
}

ld_status ld_error_set(ld_error *err, ld_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ld_error_setv(err, code, fmt, ap);
    va_end(ap);
    return code;
}

ld_status ld_error_prefix(ld_error *err, const char *fmt, ...)
{
    if (!err)
        return LD_E_INTERNAL;
    char prefix[LD_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    char old[LD_ERROR_MSG_MAX];
    memcpy(old, err->msg, sizeof old);
    old[sizeof old - 1] = '\0';
    snprintf(err->msg, sizeof err->msg, "%s: %s", prefix, old);
    return err->code;
}

void ld_error_clear(ld_error *err)
{
    if (err) {
        err->code = LD_OK;
        err->msg[0] = '\0';
    }
}
