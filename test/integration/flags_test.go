package integration

import "flag"

func flagSet() *flag.FlagSet { return flag.NewFlagSet("operator", flag.ContinueOnError) }
