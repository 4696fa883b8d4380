/*
 * handlers_transit.c
 *    POST /api/encrypt and POST /api/decrypt: Vault Transit through
 *    pg_vault, with only the keys the service is configured for
 *    (APP_TRANSIT_KEYS).  Plaintexts pass through memory only.
 */
#include <stdio.h>
#include <string.h>

#include "app.h"
#include "vault_common.h"

#define DEFAULT_KEY		"user-data"

static bool
key_ok(AppRequest *req, const char **key)
{
	if (*key == NULL)
		*key = DEFAULT_KEY;
	if (!config_transit_key_allowed(*key))
	{
		reply_error(req, 400, "unknown key_name");
		return false;
	}
	return true;
}

/* vault:v<N>:<base64>, as the extension's vault_ciphertext domain has it */
static bool
ciphertext_ok(const char *ct)
{
	return vc_ciphertext_version(ct, strlen(ct)) >= 0;
}

void
h_encrypt(AppRequest *req)
{
	const char *plaintext,
			   *key;
	const JsonField fields[] = {
		{"plaintext", true, &plaintext, 0},
		{"key_name", false, &key, 128},
		{NULL}
	};
	json_t	   *body = json_body_fields(req, fields);
	const char *params[2];
	PGresult   *res;
	DbError		err;

	if (body == NULL)
		return;
	if (!key_ok(req, &key))
		goto done;
	params[0] = plaintext;
	params[1] = key;
	res = db_exec(ST_ENCRYPT, 2, params, &err);
	if (res == NULL)
	{
		reply_db_error(req, &err, "could not encrypt");
		goto done;
	}
	reply_json(req, 200, json_pack("{s:s, s:s}", "ciphertext", PQgetvalue(res, 0, 0),
								   "key_used", key));
	PQclear(res);
done:
	json_decref(body);
}

void
h_decrypt(AppRequest *req)
{
	const char *ciphertext,
			   *key;
	const JsonField fields[] = {
		{"ciphertext", true, &ciphertext, 0},
		{"key_name", false, &key, 128},
		{NULL}
	};
	json_t	   *body = json_body_fields(req, fields);
	const char *params[2];
	PGresult   *res;
	DbError		err;

	if (body == NULL)
		return;
	if (!key_ok(req, &key))
		goto done;
	if (!ciphertext_ok(ciphertext))
	{
		reply_error(req, 400, "field \"ciphertext\" is not a Vault ciphertext (vault:vN:...)");
		goto done;
	}
	params[0] = ciphertext;
	params[1] = key;
	res = db_exec(ST_DECRYPT, 2, params, &err);
	if (res == NULL)
	{
		if (err.kind == DBE_VAULT_INVALID)
		{
			snprintf(req->sqlstate, sizeof(req->sqlstate), "%s", err.sqlstate);
			reply_error(req, 400, "ciphertext could not be decrypted with this key");
		}
		else
			reply_db_error(req, &err, "could not decrypt");
		goto done;
	}
	if (PQgetisnull(res, 0, 0))
		reply_internal(req, "decryption gave NULL");
	else
		reply_json(req, 200, json_pack("{s:s}", "plaintext", PQgetvalue(res, 0, 0)));
	PQclear(res);
done:
	json_decref(body);
}
