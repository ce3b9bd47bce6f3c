package collector

import "strconv"

func flowpbItoa(i int) string { return strconv.Itoa(i) }
