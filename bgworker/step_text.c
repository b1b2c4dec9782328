/*-------------------------------------------------------------------------
 *
 * step_text.c
 *	  Bounded text: what a step prints can be large, what it reports is not.
 *
 * Output and messages keep their tail (the end of a long output is what
 * explains how it ended), marked "[N characters cut]" as the dispatcher's
 * _tail marks its own cuts; an error message keeps its head.  Cuts never
 * split a multibyte character.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "mb/pg_wchar.h"

#include "pgautomator.h"

#define PGA_MARK_ROOM		32		/* "[N characters cut]\n" fits in it */

/*
 * pga_char_start_at_or_after returns the first character boundary of data
 * at or after offset.
 */
static Size
pga_char_start_at_or_after(const char *data, Size len, Size offset)
{
	Size		pos = 0;

	while (pos < offset && pos < len)
		pos += pg_mblen(data + pos);
	return Min(pos, len);
}

/*
 * pga_tail_drop_head keeps only the last keep bytes (or a little less, to
 * start on a character) of the buffer.
 */
static void
pga_tail_drop_head(PgaTailBuffer *tb, Size keep)
{
	Size		cut;

	if ((Size) tb->buf.len <= keep)
		return;
	cut = pga_char_start_at_or_after(tb->buf.data, tb->buf.len, tb->buf.len - keep);
	tb->cut_chars += pg_mbstrlen_with_len(tb->buf.data, cut);
	memmove(tb->buf.data, tb->buf.data + cut, tb->buf.len - cut);
	tb->buf.len -= cut;
	tb->buf.data[tb->buf.len] = '\0';
	tb->truncated = true;
}

/*
 * pga_tail_init prepares an empty buffer that keeps at most limit bytes.
 */
void
pga_tail_init(PgaTailBuffer *tb, Size limit)
{
	initStringInfo(&tb->buf);
	tb->limit = limit;
	tb->truncated = false;
	tb->cut_chars = 0;
}

/*
 * pga_tail_append adds data; the head is dropped now and then so memory
 * stays within twice the limit however much is appended.
 */
void
pga_tail_append(PgaTailBuffer *tb, const char *data, Size len)
{
	if (len > tb->limit)
	{
		Size		skip = pga_char_start_at_or_after(data, len, len - tb->limit);

		tb->cut_chars += pg_mbstrlen_with_len(tb->buf.data, tb->buf.len) +
			pg_mbstrlen_with_len(data, skip);
		resetStringInfo(&tb->buf);
		data += skip;
		len -= skip;
		tb->truncated = true;
	}
	appendBinaryStringInfo(&tb->buf, data, len);
	if ((Size) tb->buf.len > 2 * tb->limit)
		pga_tail_drop_head(tb, tb->limit);
}

/*
 * pga_tail_finish returns the kept text, at most limit bytes including the
 * mark that says how many characters were cut from its head.
 */
char *
pga_tail_finish(PgaTailBuffer *tb)
{
	StringInfoData result;

	if (tb->truncated || (Size) tb->buf.len > tb->limit)
		pga_tail_drop_head(tb, tb->limit - PGA_MARK_ROOM);
	initStringInfo(&result);
	if (tb->truncated)
		appendStringInfo(&result, "[%zu characters cut]\n", tb->cut_chars);
	appendBinaryStringInfo(&result, tb->buf.data, tb->buf.len);
	return result.data;
}

/*
 * pga_clip_text returns a copy of text cut to at most limit bytes.
 */
char *
pga_clip_text(const char *text, Size limit)
{
	Size		len = strlen(text);
	Size		keep;
	char	   *result;

	if (len <= limit)
		return pstrdup(text);
	keep = pg_mbcliplen(text, len, limit);
	result = palloc(keep + 1);
	memcpy(result, text, keep);
	result[keep] = '\0';
	return result;
}
