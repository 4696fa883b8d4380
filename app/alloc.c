/*
 * alloc.c
 *    The process-wide allocator of jansson: each allocation carries its
 *    size in front, so that freeing wipes it.  Request bodies and answers
 *    hold plaintexts, Vault's answers tokens and passwords.  A leaf.
 */
#include <stdlib.h>
#include <string.h>

#include "app.h"

#define WIPE_HEADER 16

static void *
wiping_malloc(size_t n)
{
	char	   *p = malloc(n + WIPE_HEADER);

	if (p == NULL)
		return NULL;
	*(size_t *) p = n;
	return p + WIPE_HEADER;
}

void
json_wipe_free(void *ptr)
{
	char	   *p;

	if (ptr == NULL)
		return;
	p = (char *) ptr - WIPE_HEADER;
	explicit_bzero(ptr, *(size_t *) p);
	free(p);
}

void
json_wipe_init(void)
{
	json_set_alloc_funcs(wiping_malloc, json_wipe_free);
}
