/*
 * xlcfg-check: reads a Xen domain config with libxlutil, the parser behind
 * `xl create`, and prints what it read, so tests can hold vm-container's own
 * parser to Xen's.
 *
 *   xlcfg-check FILE [KEY...]
 *
 * Exit status: 0 parsed, 1 libxlutil refused the file (its message, with
 * the line, is on standard error), 2 usage. One line per KEY:
 *
 *   KEY=string:VALUE         a string or a number (numbers stay text)
 *   KEY=list:[A|B|...]       a list; a nested list shows as <nonstring>
 *   KEY=absent               not set
 *
 * and for the key `disk`, one more line per list entry, each read by
 * xlu_disk_parse as `xl create` reads it:
 *
 *   disk[I]=ok:TARGET,VDEV,FORMAT,MODE   (MODE is w or r)
 *   disk[I]=bad                          (libxlutil's reason on stderr)
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <libxl.h>
#include <libxlutil.h>

static const char *or_empty(const char *s) { return s ? s : ""; }

static void print_disks(XLU_Config *cfg, const XLU_ConfigList *list, int n)
{
    for (int i = 0; i < n; i++) {
        const char *spec = xlu_cfg_get_listitem(list, i);
        libxl_device_disk disk;
        libxl_device_disk_init(&disk);
        /* a nested list has no spec string: xl would refuse it too */
        if (spec && xlu_disk_parse(cfg, 1, &spec, &disk) == 0) {
            char format[32];
            const char *f = libxl_disk_format_to_string(disk.format);
            size_t k = 0;
            for (; f && f[k] && k + 1 < sizeof format; k++)
                format[k] = (char)tolower((unsigned char)f[k]);
            format[k] = '\0';
            printf("disk[%d]=ok:%s,%s,%s,%s\n", i, or_empty(disk.pdev_path),
                   or_empty(disk.vdev), format, disk.readwrite ? "w" : "r");
        } else {
            printf("disk[%d]=bad\n", i);
        }
        libxl_device_disk_dispose(&disk);
    }
}

static void print_key(XLU_Config *cfg, const char *key)
{
    const char *s;
    int rc = xlu_cfg_get_string(cfg, key, &s, 1);
    if (rc == 0) {
        printf("%s=string:%s\n", key, s);
        return;
    }
    if (rc == ESRCH) {
        printf("%s=absent\n", key);
        return;
    }
    XLU_ConfigList *list;
    int n;
    if (xlu_cfg_get_list(cfg, key, &list, &n, 1) != 0) {
        printf("%s=unreadable\n", key);
        return;
    }
    printf("%s=list:[", key);
    for (int i = 0; i < n; i++) {
        const char *item = xlu_cfg_get_listitem(list, i);
        printf("%s%s", i ? "|" : "", item ? item : "<nonstring>");
    }
    printf("]\n");
    if (strcmp(key, "disk") == 0)
        print_disks(cfg, list, n);
}

int main(int argc, char **argv)
{
    if (argc < 2 || argv[1][0] == '\0') {
        fprintf(stderr, "usage: xlcfg-check FILE [KEY...]\n");
        return 2;
    }
    XLU_Config *cfg = xlu_cfg_init(stderr, argv[1]);
    if (!cfg) {
        fprintf(stderr, "xlcfg-check: out of memory\n");
        return 2;
    }
    if (xlu_cfg_readfile(cfg, argv[1]) != 0) {
        xlu_cfg_destroy(cfg);
        return 1;
    }
    for (int i = 2; i < argc; i++)
        print_key(cfg, argv[i]);
    fflush(stdout);
    xlu_cfg_destroy(cfg);
    return 0;
}
