#!/bin/sh
set -e
mkdir -p "$2"
echo "fixtures in $2"
