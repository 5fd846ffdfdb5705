/*
 * Status codes (from the one table in include/rmsfuse_common.h) and the
 * version string.  A baseline file.
 */
#if defined(__AVX__) || defined(__AVX2__) || defined(__AVX512F__)
#  error "src/core/status.c is a baseline file: do not compile it with -mavx*/-march flags"
#endif

#include "internal.h"

const char *rmsfuse_strerror(int status)
{
    switch (status) {
#define RMSFUSE_TEXT_(name, value, text) \
    case value:                          \
        return text;
        RMSFUSE_STATUS_TABLE(RMSFUSE_TEXT_)
#undef RMSFUSE_TEXT_
    default:
        return "unknown status code";
    }
}

const char *rmsfuse_status_name(int status)
{
    switch (status) {
#define RMSFUSE_NAME_(name, value, text) \
    case value:                          \
        return #name;
        RMSFUSE_STATUS_TABLE(RMSFUSE_NAME_)
#undef RMSFUSE_NAME_
    default:
        return NULL;
    }
}

const char *rmsfuse_version(void)
{
    return RMSFUSE_VERSION_STRING;
}
