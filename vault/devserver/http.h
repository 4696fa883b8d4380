/*
 * http.h
 *    The listener of the development server (http.c), started by main.c.
 */
#ifndef DEVSERVER_HTTP_H
#define DEVSERVER_HTTP_H

#include <netinet/in.h>

struct MHD_Daemon;

/* Start serving on addr (port 0: any free port; *bound_port says which). */
struct MHD_Daemon *http_start(const struct sockaddr_in *addr, const char *tls_cert,
							  const char *tls_key, int *bound_port);

#endif							/* DEVSERVER_HTTP_H */
