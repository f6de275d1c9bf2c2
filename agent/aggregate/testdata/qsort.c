/* Sorts arrays of doubles with glibc's qsort and carbon-c-relay's
 * comparator (aggregator.c, cmp_entry), for TestMsortAgainstGlibc.
 * Input: one array per line, "n v1 v2 ... vn"; output: the sorted array,
 * each value as %.17g, one line per array. */
#include <stdio.h>
#include <stdlib.h>

static int cmp_entry(const void *l, const void *r)
{
	return *(const double *)l - *(const double *)r;
}

int main(void)
{
	int n;
	while (scanf("%d", &n) == 1) {
		double *v = malloc(sizeof(double) * (n > 0 ? n : 1));
		for (int i = 0; i < n; i++)
			if (scanf("%lf", &v[i]) != 1)
				return 1;
		qsort(v, n, sizeof(double), cmp_entry);
		for (int i = 0; i < n; i++)
			printf(i ? " %.17g" : "%.17g", v[i]);
		printf("\n");
		free(v);
	}
	return 0;
}
