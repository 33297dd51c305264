install.packages('ggplot2')
